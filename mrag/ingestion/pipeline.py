"""Declarative ingestion pipelines: what to read, how to cut it, which model, which store.

A pipeline is a TOML file with the sections below; every key is optional and falls back to the
built-in default, which ``mrag/pipelines/default.toml`` (shipped in the package) spells out in
full::

    [sources]   include, exclude, passwords_file
    [chunking]  max_tokens, overlap_tokens
    [images]    min_side, max_aspect, max_per_document
    [limits]    max_pages, max_pixels, time_budget_s, memory_mb, workers
    [ocr]       enabled, languages, dpi, page_timeout_s, tesseract
    [model]     name, revision, device, dtype, batch_size
    [store]     path, url, collection
    [ray]       address, actors, batch_size, cpus_per_actor, gpus_per_actor, parse_cpus

Command-line flags and environment variables override the file (see :meth:`Pipeline.override`).
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from mrag.extract.document import ExtractionLimits
from mrag.extract.figures import ImageFilter
from mrag.extract.ocr import OcrSettings
from mrag.model import HUB_MODEL_ID
from mrag.model.precision import AUTO, DTYPE_CHOICES

#: The built-in pipeline, spelled out; installed with the package.
DEFAULT_PIPELINE_FILE = Path(__file__).resolve().parent / "pipelines" / "default.toml"


class PipelineError(ValueError):
    """A pipeline file is unreadable or holds an unknown key or a bad value."""


DEFAULT_INCLUDE: tuple[str, ...] = (
    "**/*.pdf",
    *("**/*.png", "**/*.jpg", "**/*.jpeg", "**/*.webp", "**/*.gif", "**/*.bmp", "**/*.tif"),
    *("**/*.tiff", "**/*.txt", "**/*.text", "**/*.md", "**/*.markdown", "**/*.rst"),
    *("**/*.html", "**/*.htm", "**/*.xhtml", "**/*.docx"),
)
DEFAULT_EXCLUDE: tuple[str, ...] = ("**/.*/**", "**/.*", "**/node_modules/**", "**/__pycache__/**")


@dataclass(frozen=True)
class SourcesSection:
    include: tuple[str, ...] = DEFAULT_INCLUDE
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    passwords_file: str | None = None


@dataclass(frozen=True)
class ChunkingSection:
    max_tokens: int = 512
    overlap_tokens: int = 64


@dataclass(frozen=True)
class ImagesSection:
    min_side: int = 64
    max_aspect: float = 20.0
    max_per_document: int = 500


@dataclass(frozen=True)
class LimitsSection:
    max_pages: int = 2000
    max_pixels: int = 8192 * 8192
    time_budget_s: float = 300.0
    memory_mb: int = 8192
    #: Parser worker processes: a number, or "auto" (one per usable core, as memory allows).
    workers: int | str = "auto"


@dataclass(frozen=True)
class OcrSection:
    enabled: str | bool = "auto"  # "auto", true or false
    languages: tuple[str, ...] = ("eng",)
    dpi: int = 300
    page_timeout_s: float = 60.0
    tesseract: str = ""


@dataclass(frozen=True)
class ModelSection:
    name: str = HUB_MODEL_ID
    revision: str | None = None
    device: str = "auto"
    dtype: str = AUTO
    batch_size: int = 32


@dataclass(frozen=True)
class StoreSection:
    path: str | None = None
    url: str | None = None
    collection: str | None = None


@dataclass(frozen=True)
class RaySection:
    """How ``ingest --ray`` spreads the run: model actors and their resources."""

    address: str | None = None
    actors: int = 1
    batch_size: int = 16
    cpus_per_actor: float = 1.0
    gpus_per_actor: float = 0.0
    parse_cpus: float = 1.0


@dataclass(frozen=True)
class Pipeline:
    """One ingestion pipeline. ``Pipeline()`` is the built-in default."""

    sources: SourcesSection = field(default_factory=SourcesSection)
    chunking: ChunkingSection = field(default_factory=ChunkingSection)
    images: ImagesSection = field(default_factory=ImagesSection)
    limits: LimitsSection = field(default_factory=LimitsSection)
    ocr: OcrSection = field(default_factory=OcrSection)
    model: ModelSection = field(default_factory=ModelSection)
    store: StoreSection = field(default_factory=StoreSection)
    ray: RaySection = field(default_factory=RaySection)

    @classmethod
    def default(cls) -> Pipeline:
        """The built-in pipeline, read from the file the package ships."""
        return cls.from_toml(DEFAULT_PIPELINE_FILE)

    @classmethod
    def from_toml(cls, path: str | Path) -> Pipeline:
        """Read a pipeline file; unknown sections or keys are errors, not silently ignored.

        A relative path that does not exist from the working directory but names a pipeline the
        package ships (``pipelines/default.toml``) reads that one, so examples work anywhere.
        """
        path = Path(path)
        if not path.is_absolute() and not path.exists():
            packaged = DEFAULT_PIPELINE_FILE.parent.parent / path
            if packaged.is_file():
                path = packaged
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PipelineError(f"{path}: file not found") from None
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise PipelineError(f"{path}: not valid TOML ({exc})") from None
        return cls.from_dict(raw, name=str(path))

    @classmethod
    def from_dict(cls, raw: dict[str, Any], *, name: str = "pipeline") -> Pipeline:
        sections = {spec.name: spec for spec in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        for section, content in raw.items():
            if section not in sections:
                raise PipelineError(f"{name}: unknown section [{section}]")
            if not isinstance(content, dict):
                raise PipelineError(f"{name}: [{section}] must be a table")
            kind = sections[section].default_factory  # type: ignore[misc]
            values[section] = _section_from(kind, content, f"{name}: [{section}]")
        pipeline = cls(**values)
        pipeline.validate(name)
        return pipeline

    def override(self, **changes: Any) -> Pipeline:
        """A copy with ``section__key=value`` changes applied; ``None`` values are ignored."""
        updated: dict[str, Any] = {}
        for dotted, value in changes.items():
            if value is None:
                continue
            section, _, key = dotted.partition("__")
            current = updated.get(section, getattr(self, section))
            updated[section] = dataclasses.replace(current, **{key: value})
        pipeline = dataclasses.replace(self, **updated)
        pipeline.validate("command line")
        return pipeline

    def validate(self, name: str) -> None:
        checks = [
            (self.chunking.max_tokens >= 8, "chunking.max_tokens must be at least 8"),
            (self.chunking.max_tokens <= 8192, "chunking.max_tokens must be at most 8192"),
            (self.chunking.overlap_tokens >= 0, "chunking.overlap_tokens must not be negative"),
            (
                self.chunking.overlap_tokens < self.chunking.max_tokens,
                f"chunking.overlap_tokens ({self.chunking.overlap_tokens}) must be smaller than "
                f"chunking.max_tokens ({self.chunking.max_tokens}); lower it with --overlap-tokens "
                "or [chunking] overlap_tokens",
            ),
            (self.images.min_side >= 0, "images.min_side must not be negative"),
            (self.images.max_aspect >= 1, "images.max_aspect must be at least 1"),
            (self.limits.max_pages >= 1, "limits.max_pages must be at least 1"),
            (self.limits.max_pixels >= 1, "limits.max_pixels must be at least 1"),
            (self.limits.time_budget_s > 0, "limits.time_budget_s must be positive"),
            (self.limits.memory_mb >= 256, "limits.memory_mb must be at least 256"),
            (_valid_workers(self.limits.workers), 'limits.workers must be "auto" or at least 1'),
            (
                self.ocr.enabled == "auto" or isinstance(self.ocr.enabled, bool),
                'ocr.enabled must be "auto", true or false',
            ),
            (bool(self.ocr.languages), "ocr.languages must name at least one language"),
            (72 <= self.ocr.dpi <= 1200, "ocr.dpi must be between 72 and 1200"),
            (self.ocr.page_timeout_s > 0, "ocr.page_timeout_s must be positive"),
            (self.model.batch_size >= 1, "model.batch_size must be at least 1"),
            (
                self.model.dtype in DTYPE_CHOICES,
                "model.dtype must be auto, float32 or bfloat16",
            ),
            (not (self.store.path and self.store.url), "store: give path or url, not both"),
            (self.ray.actors >= 1, "ray.actors must be at least 1"),
            (self.ray.batch_size >= 1, "ray.batch_size must be at least 1"),
            (self.ray.cpus_per_actor >= 0, "ray.cpus_per_actor must not be negative"),
            (self.ray.gpus_per_actor >= 0, "ray.gpus_per_actor must not be negative"),
            (self.ray.parse_cpus > 0, "ray.parse_cpus must be positive"),
        ]
        for ok, message in checks:
            if not ok:
                raise PipelineError(f"{name}: {message}")

    def extraction_limits(self) -> ExtractionLimits:
        return ExtractionLimits(
            max_pages=self.limits.max_pages,
            max_pixels=self.limits.max_pixels,
            max_images_per_document=self.images.max_per_document,
            time_budget_s=self.limits.time_budget_s,
        )

    def ocr_settings(self) -> OcrSettings:
        section = self.ocr
        return OcrSettings(
            enabled=section.enabled,  # type: ignore[arg-type]
            languages=section.languages,
            dpi=section.dpi,
            page_timeout_s=section.page_timeout_s,
            tesseract=section.tesseract,
        )

    def image_filter(self) -> ImageFilter:
        return ImageFilter(
            min_side=self.images.min_side,
            max_aspect=self.images.max_aspect,
            max_images=self.images.max_per_document,
        )


def _section_from(kind: type, content: dict[str, Any], where: str) -> Any:
    specs = {spec.name: spec for spec in dataclasses.fields(kind)}
    values: dict[str, Any] = {}
    for key, value in content.items():
        if key not in specs:
            raise PipelineError(f"{where}: unknown key {key!r}")
        default = specs[key].default
        if kind is OcrSection and key == "enabled":
            if not (value == "auto" or isinstance(value, bool)):
                raise PipelineError(f'{where}: enabled must be "auto", true or false')
        elif kind is LimitsSection and key == "workers":
            if not _valid_workers(value):
                raise PipelineError(f'{where}: workers must be "auto" or an integer of at least 1')
        elif isinstance(default, tuple):
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise PipelineError(f"{where}: {key} must be a list of strings")
            value = tuple(value)
        elif default is None or isinstance(default, str):
            if not isinstance(value, str):
                raise PipelineError(f"{where}: {key} must be a string")
            if default is None and not value:
                value = None  # an empty string means "not set"
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise PipelineError(f"{where}: {key} must be a number")
        elif isinstance(default, int):
            if not isinstance(value, int):
                raise PipelineError(f"{where}: {key} must be an integer")
        else:
            value = float(value)
        values[key] = value
    return kind(**values)


def _valid_workers(value: Any) -> bool:
    """``limits.workers``: "auto" or a whole number of at least one."""
    if value == "auto":
        return True
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1
