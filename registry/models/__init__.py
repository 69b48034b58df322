"""The registry's data model: the case-report form (``crf``) and the study workflow
(``workflow``). Both belong to the ``registry`` app; import them from here."""

from .api import *  # noqa: F403
from .api import __all__ as _api
from .crf import *  # noqa: F403
from .crf import __all__ as _crf
from .workflow import *  # noqa: F403
from .workflow import __all__ as _workflow

__all__ = [*_crf, *_workflow, *_api]
