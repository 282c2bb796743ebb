"""Extraction: a source file in, a :class:`~mrag.extract.document.ParsedDocument` out.

:mod:`~mrag.extract.read` picks the reader by file type; the readers live in
:mod:`mrag.extract.formats`. Around them sit what every reader shares: the document model
(:mod:`~mrag.extract.document`), text clean-up (:mod:`~mrag.extract.hygiene`), figure rules
(:mod:`~mrag.extract.figures`), OCR (:mod:`~mrag.extract.ocr`) and the parser worker process that
bounds the time and memory of one file (:mod:`~mrag.extract.worker`).
"""
