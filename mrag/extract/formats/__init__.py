"""One reader per file format; each returns a :class:`~mrag.extract.document.ParsedDocument`."""
