"""The registry's data model: the case-report form (``crf``), the study workflow
(``workflow``), the data freezes (``freezes``) and each patient's quality-of-care
facts (``quality``). All belong to the ``registry`` app;
import them from here."""

from .api import *  # noqa: F403
from .api import __all__ as _api
from .crf import *  # noqa: F403
from .crf import __all__ as _crf
from .freezes import *  # noqa: F403
from .freezes import __all__ as _freezes
from .quality import *  # noqa: F403
from .quality import __all__ as _quality
from .workflow import *  # noqa: F403
from .workflow import __all__ as _workflow

__all__ = [*_crf, *_workflow, *_api, *_freezes, *_quality]
