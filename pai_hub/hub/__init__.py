"""The platform as one JupyterHub deployment: launcher, jupyterhub_config.py, authenticator, templates."""
