from . import access


def registry(request):
    """Role-dependent navigation flags for the templates."""
    user = request.user
    return {
        "can_edit_clinical": access.can_edit_clinical(user),
        "can_view_reports": access.can_view_reports(user),
        "can_export": access.can_export(user),
        "is_registry_admin": access.is_admin(user),
    }
