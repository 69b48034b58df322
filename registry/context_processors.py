from . import access, sessions


def registry(request):
    """Navigation flags for the templates, each a permission of ``registry.access``."""
    user = request.user
    return {
        "can_edit_clinical": access.has(user, access.EDIT_CLINICAL),
        "can_view_reports": access.has(user, access.VIEW_REPORTS),
        "can_view_quality": access.has(user, access.VIEW_QUALITY),
        "can_raise_query": access.has(user, access.RAISE_QUERY),
        "can_export": access.has(user, access.EXPORT),
        "can_administer": access.has(user, access.ADMINISTER),
        "can_manage_users": access.has(user, access.MANAGE_USERS),
        "can_audit": access.has(user, access.AUDIT),
        "can_freeze": access.has(user, access.FREEZE),
        # For the idle warning (static/registry/session.js).
        "session_seconds": sessions.session_seconds(),
        "session_warning_seconds": sessions.warning_seconds(),
    }
