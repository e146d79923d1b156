"""Where tasks run. Each backend implements :class:`pai_hub.backends.base.Backend`."""
