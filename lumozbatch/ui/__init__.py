"""What a person sees: progress display, plain and JSON event streams, summaries, gallery."""
