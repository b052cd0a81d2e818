"""Reads for pages: querysets filtered to what the asking user may see."""
