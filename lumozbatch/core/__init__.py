"""The pure core: no trio, no httpx, no clock, no filesystem.

Every function here takes what it needs (text, records, ``now``) and returns a value or a
decision; the shell (``lumozbatch.shell``) does the I/O and the sleeping.
"""
