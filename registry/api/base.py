"""What every API endpoint is: who may call it (a token, or the verified session with
CSRF), ``access.USE_API``, and a line in the request log for each request."""

from __future__ import annotations

import time

from rest_framework import generics
from rest_framework.views import APIView

from registry.models import ApiToken

from .authentication import ApiTokenAuthentication, VerifiedSessionAuthentication
from .permissions import UsesApi
from .services import api_request_log


class LoggedRequests:
    """Logs every request of the view (user, token, endpoint, method, status, time)."""

    def initial(self, request, *args, **kwargs):
        self._started = time.monotonic()
        super().initial(request, *args, **kwargs)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        started = getattr(self, "_started", time.monotonic())
        token = request.auth if isinstance(request.auth, ApiToken) else None
        api_request_log(
            user=request.user,
            token=token,
            endpoint=request.path,
            method=request.method,
            status=response.status_code,
            duration_ms=round((time.monotonic() - started) * 1000),
        )
        return response


class ApiView(LoggedRequests, APIView):
    authentication_classes = [ApiTokenAuthentication, VerifiedSessionAuthentication]
    permission_classes = [UsesApi]


class ApiListView(LoggedRequests, generics.ListAPIView):
    authentication_classes = [ApiTokenAuthentication, VerifiedSessionAuthentication]
    permission_classes = [UsesApi]
