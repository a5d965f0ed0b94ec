"""Placeholder while this module is being written (see issue 2)."""
