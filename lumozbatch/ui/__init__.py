"""What a person sees: progress display, plain and JSON event streams, summaries, gallery.

``make_reporter`` picks the event sink for a run (live display, plain lines, JSON lines,
quiet); ``render_summary`` writes the final account of a batch from its ledger state;
``write_gallery`` writes the batch's ``index.html``.
"""

from lumozbatch.ui.reporter import Reporter, make_reporter

__all__ = ["Reporter", "make_reporter"]
