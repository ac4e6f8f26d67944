"""Image references, normalized as Docker reads them, and ORCA_ALLOWED_IMAGES entries (pure).

Docker's reference grammar (distribution/reference): `[host[:port]/]path[:tag][@digest]`.
The first path component is a registry host iff it contains `.` or `:` or is `localhost`;
otherwise the registry is `docker.io`, where a one-component name lives under `library/`.
So `busybox`, `library/busybox` and `docker.io/library/busybox:latest` are one image, while
`busybox.attacker.example/miner` is a repository on the registry `busybox.attacker.example`.

An allow-list entry names a repository, matched on the normalized reference (never on the raw
text): `*` matches any characters except `/`; a repository ending in `/*` admits everything
under that namespace, at any depth; an entry without tag or digest admits every tag and digest
of its repository, one with a tag admits only that tag (and no digest), one with a digest only
that digest.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_NAMESPACE = "library"
DEFAULT_TAG = "latest"
MAX_NAME = 255
PLACEHOLDER = "x"  # stands in for `*` when an entry's shape is checked against the grammar

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*(?::[0-9]+)?")
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_PATH = re.compile(rf"{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*")
_TAG = re.compile(r"[\w][\w.-]{0,127}")
_DIGEST = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-f]{32,}")
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}")


class InvalidReference(ValueError):
    """The text is not an image reference in Docker's grammar; the message says what is wrong."""


@dataclass(frozen=True)
class ImageRef:
    """A normalized image reference: `domain/path`, with a tag (default `latest`) or a digest."""

    domain: str
    path: str
    tag: str | None
    digest: str | None

    @property
    def name(self) -> str:
        """The full repository name, e.g. `docker.io/library/busybox`."""
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        return self.name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")


def _split(text: str) -> tuple[str, str, str | None, str | None]:
    """Split `text` into (domain, path, tag, digest) by Docker's rules, without validating
    the parts; the docker.io defaults (domain, `library/`) are applied, the tag default is not."""
    remainder, at, digest = text.partition("@")
    first, slash, rest = remainder.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        domain, remainder = first, rest
    else:
        domain = DEFAULT_DOMAIN
    path, colon, tag = remainder.partition(":")
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = f"{OFFICIAL_NAMESPACE}/{path}"
    return domain, path, tag if colon else None, digest if at else None


def _check(text: str, domain: str, path: str, tag: str | None, digest: str | None) -> None:
    """Raise InvalidReference unless every part matches Docker's grammar."""
    if not _DOMAIN.fullmatch(domain):
        raise InvalidReference(f"{text[:128]!r}: {domain[:64]!r} is not a registry host")
    if not _PATH.fullmatch(path) or len(f"{domain}/{path}") > MAX_NAME:
        raise InvalidReference(f"{text[:128]!r}: the repository must be lowercase path components "
                               f"of letters, digits and separators, at most {MAX_NAME} characters")
    if tag is not None and not _TAG.fullmatch(tag):
        raise InvalidReference(f"{text[:128]!r}: {tag[:64]!r} is not a tag")
    if digest is not None and (not _DIGEST.fullmatch(digest)
                               or (digest.startswith("sha256:") and not _SHA256.fullmatch(digest))):
        raise InvalidReference(f"{text[:128]!r}: {digest[:80]!r} is not a digest")


def normalize(image: str) -> ImageRef:
    """Return `image` as Docker reads it: `busybox` -> docker.io/library/busybox:latest.

    Raises:
        InvalidReference: `image` is not a reference Docker would accept.
    """
    parts = _split(image)
    _check(image, *parts)
    domain, path, tag, digest = parts
    return ImageRef(domain, path, DEFAULT_TAG if tag is None and digest is None else tag, digest)


@dataclass(frozen=True)
class ImagePattern:
    """One ORCA_ALLOWED_IMAGES entry: a repository pattern and an optional tag or digest pin."""

    entry: str
    name: re.Pattern
    tag: re.Pattern | None
    digest: str | None

    def admits(self, ref: ImageRef) -> bool:
        """True when `ref` is in the entry's repository (or namespace) and matches its pin."""
        if not self.name.fullmatch(ref.name):
            return False
        if self.digest is not None:
            return ref.digest == self.digest
        if self.tag is not None:
            return ref.digest is None and bool(self.tag.fullmatch(ref.tag or ""))
        return True


def _glob(text: str) -> str:
    """A regex for `text` where `*` matches any characters except `/`."""
    return "[^/]*".join(re.escape(piece) for piece in text.split("*"))


@functools.lru_cache(maxsize=256)
def parse_pattern(entry: str) -> ImagePattern:
    """Parse an allow-list entry (see the module docstring for the rule).

    Raises:
        InvalidReference: the entry, with each `*` read as a letter, is not an image reference.
    """
    _check(entry, *_split(entry.replace("*", PLACEHOLDER)))
    domain, path, tag, digest = _split(entry)
    namespace = path == "*" or path.endswith("/*")  # `team/*`: the namespace, at any depth
    name = f"{domain}/{path[:-1]}" if namespace else f"{domain}/{path}"
    regex = _glob(name) + (".+" if namespace else "")
    return ImagePattern(entry, re.compile(regex), re.compile(_glob(tag)) if tag is not None else None, digest)
