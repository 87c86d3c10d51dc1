"""The shell: trio, httpx and the disk, kept thin around ``lumozbatch.core``."""
