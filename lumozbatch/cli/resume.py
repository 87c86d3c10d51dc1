"""``lumozbatch resume``: lives with ``apply`` (same options, same engine); registered from here."""

from lumozbatch.cli.apply import resume_cmd

__all__ = ["resume_cmd"]
