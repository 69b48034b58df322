"""Accounts: site-scoped user management, the password change, the account audit."""
