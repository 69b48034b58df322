"""The data freezes' pages (services: ``registry.freezes``)."""
