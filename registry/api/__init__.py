"""The REST API (``/api/v1/``): per-user tokens, the same access and validation as the
pages. services.py (tokens, the request log) · authentication.py · permissions.py ·
serializers.py · views.py · urls.py. The study tables and quality indicators are
served by ``analytics/api.py`` (``registry`` never imports ``analytics``)."""
