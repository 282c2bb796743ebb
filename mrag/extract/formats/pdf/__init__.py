"""PDF: pypdf reads the text layer and embedded pictures (:mod:`.reader`); PDFium (the only place
that imports pypdfium2) opens what pypdf cannot, renders pages and regions, and finds drawn
figures (:mod:`.pdfium`, :mod:`.render`, :mod:`.vector_figures`)."""
