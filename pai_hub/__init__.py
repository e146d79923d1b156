"""PAI Hub: a research GPU platform speaking OpenPAI's job protocol v2 and REST API v2."""

__version__ = "0.1.0"
