"""The whole ingestion path over real PDFs (``../shared/corpus``, when present)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from helpers import shared_path

from mrag.ingestion.pipeline import Pipeline
from mrag.ingestion.run import ingest
from mrag.model import JinaClipModel
from mrag.store import Store, StoreSettings


def test_sample_pdfs_are_ingested_or_reported(tmp_path: Path, tiny_model: JinaClipModel) -> None:
    folder = shared_path("corpus", "pdf", "py-pdf-sample-files")
    truth = {item["path"]: item for item in json.loads((folder / "files.json").read_text())["data"]}
    with (folder.parent / "INDEX.csv").open() as handle:
        index = {
            row["path"].split("py-pdf-sample-files/", 1)[-1]: row
            for row in csv.DictReader(handle)
            if "py-pdf-sample-files/" in row["path"]
        }
    passwords = tmp_path / "passwords.txt"
    passwords.write_text("openpassword\n")
    pipeline = Pipeline().override(sources__passwords_file=str(passwords))
    with Store.open(StoreSettings(path=str(tmp_path / "store"))) as store:
        report = ingest([folder], store=store, model=tiny_model, pipeline=pipeline)
        records = {record.source: record for record in store.sources()}

    outcomes = {}
    for outcome in report.files:
        relative = outcome.source.split("py-pdf-sample-files/", 1)[1]
        outcomes[relative] = outcome
    pdfs = [path for path in truth if (folder / path).exists()]
    assert len(pdfs) >= 20
    for path in pdfs:
        outcome = outcomes[path]
        if outcome.status == "failed":
            # Only files that really are unreadable may fail, and never without a reason.
            assert outcome.path.endswith(path) and outcome.reason, outcome
            assert "unreadable" in path or "broken" in outcome.reason or "not a" in outcome.reason
            continue
        # A PDF of pictures only, all filtered or undecodable, holds no content but is read.
        assert outcome.status in ("ingested", "no_content"), (path, outcome)
        assert outcome.pages == truth[path]["pages"], path
        record = next(r for s, r in records.items() if s.endswith(path))
        assert record.points == outcome.points
        if int(index[path]["n_image_xobjects"] or 0):
            # Each image is stored, filtered with a reason, or reported: none silently lost.
            accounted = (
                outcome.images
                + sum(outcome.filtered.values())
                + sum("image" in problem for problem in outcome.problems)
            )
            assert accounted >= 1, (path, outcome)
    encrypted = [p for p in pdfs if truth[p]["encrypted"]]
    assert encrypted and all(outcomes[p].status == "ingested" for p in encrypted)
    thesis = max(pdfs, key=lambda p: truth[p]["pages"])
    assert outcomes[thesis].chunks > truth[thesis]["pages"] / 2
