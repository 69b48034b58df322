"""Signals the registry sends about its data, for what other apps keep beside it."""

from django.dispatch import Signal

# Sent after sections of some patients were written (saved, deleted, or written in
# bulk), with ``patient_ids`` (a collection of patient keys; None: every patient) and
# ``using`` (the database alias). ``analytics`` keeps each patient's quality facts
# (``registry.models.QualityFacts``) by it.
sections_written = Signal()
