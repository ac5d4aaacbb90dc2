"""Unsigned demo actors bundled at install time (see wascc.standalone.demo)."""
