"""``imgpipe report``: the page and its Jinja templates (package data in templates/)."""
