"""The server's URL fetcher is the library's guarded one (:mod:`mrag.images.urls`)."""

from mrag.images.urls import (
    MAX_REDIRECTS,
    FetchedURL,
    IPAddress,
    URLError,
    fetch_public_url,
    is_public_address,
)

__all__ = [
    "MAX_REDIRECTS",
    "FetchedURL",
    "IPAddress",
    "URLError",
    "fetch_public_url",
    "is_public_address",
]
