"""OpenPAI REST API v2 (and our extensions) on tornado, served at /api/v2 and /rest-server/api/v2."""
