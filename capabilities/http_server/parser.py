"""httptools glue: one connection's request parsing, with this server's limits.

httptools (llhttp) parses; :class:`_RequestParser` is its protocol object and
adds what llhttp leaves to the server: the header size limit (including bytes
llhttp buffers without telling us), the body size limit (a ``Content-Length``
or a chunk size over it is refused before any of the body is read), the HTTP
version and ``Expect`` checks, and the split of a chunked body into lines so
each chunk-size line can be read.  Parsed requests (or the refusal that ends
the connection) queue up in ``ready``, in order, for the connection to answer.
"""

from __future__ import annotations

import time
from collections import deque

import httptools

from wascc.logs import provider_logger

from .responses import _Refusal
from .settings import CAPABILITY_ID, ServerSettings

log = provider_logger(__name__, CAPABILITY_ID)

_SLICE = 4096  # bytes fed to the parser at a time (bounds an unfinished header's growth)
_HEAD_END = b"\r\n\r\n"
_CHUNK_LINE_CAP = 256  # bytes of a chunk-size line kept to read the size from
_HEX = frozenset(b"0123456789abcdefABCDEF")


class _Request:
    """A request being parsed, then waiting in the connection's queue."""

    __slots__ = (
        "began",
        "body",
        "body_len",
        "continued",
        "deadline",
        "expect_continue",
        "header",
        "headers_done",
        "keep_alive",
        "last",
        "method",
        "url",
        "version",
    )

    def __init__(self, began: float, deadline: float) -> None:
        self.began = began
        self.url = b""
        self.method = "GET"
        self.version = "1.1"
        self.header: dict[str, str] = {}
        self.body: list[bytes] = []
        self.body_len = 0
        self.headers_done = False
        self.expect_continue = False
        self.continued = False
        self.keep_alive = True
        self.last = False  # the connection closes after this one (upgrade)
        self.deadline = deadline

    def target(self) -> tuple[str, str]:
        """(path, queryString) of the request target."""
        url = self.url
        if url[:1] == b"/":
            path, _, query = url.partition(b"?")
            query = query.partition(b"#")[0]
            return path.decode("latin-1"), query.decode("latin-1")
        if url == b"*" or self.method == "CONNECT":
            return url.decode("latin-1"), ""
        try:
            parsed = httptools.parse_url(url)
        except httptools.HttpParserInvalidURLError:
            raise _Refusal(400, "the request target is not a URL") from None
        path_b = parsed.path or b"/"
        return path_b.decode("latin-1"), (parsed.query or b"").decode("latin-1")


class _RequestParser:
    """The parser state of one connection; it is also httptools' protocol object.

    :class:`~.connection._Connection` extends it with the socket; the fuzz
    target feeds it bytes directly.
    """

    def __init__(self, settings: ServerSettings, label: str) -> None:
        self.settings = settings
        self.label = label  # names the listener in log lines
        self.parser = httptools.HttpRequestParser(self)
        self.ready: deque[_Request | _Refusal] = deque()
        self.current: _Request | None = None
        self.header_bytes = 0  # request line and complete headers of the current request
        self.unseen = 0  # bytes of an unfinished header inside the parser (at least)
        self.header_event = False
        self.ended = False  # no request may follow (Connection: close, an error, an upgrade)
        self.surplus = False  # bytes arrived after the last request we will read
        # Chunked bodies: the parser does not tell us a chunk's declared size, so while
        # one is read we feed it line by line and read each size line ourselves.
        self.chunked = False  # the current request's body is chunked
        self.chunk_left = 0  # data bytes of the current chunk still to come (known sizes)
        self.line = b""  # the chunk-size line being fed (its first _CHUNK_LINE_CAP bytes)
        self.line_known = False  # ``line`` holds the whole current line from its start
        self.tail = b""  # the last bytes of a request head fed (a terminator may straddle)
        self.head_fed = False  # the part being fed ends with a request head's blank line

    # -- httptools callbacks (called from feed_data, on the serving thread) --

    def on_message_begin(self) -> None:
        now = time.monotonic()
        self.current = _Request(now, now + self.settings.request_timeout)
        self.header_bytes = self.unseen = 0
        self.header_event = True

    def on_url(self, url: bytes) -> None:
        assert self.current is not None
        self.current.url += url
        self.header_bytes += len(url)
        self.header_event = True
        if self.header_bytes > self.settings.max_header_bytes:
            raise _Refusal(431, "the request target is too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        request = self.current
        assert request is not None
        self.header_bytes += len(name) + len(value) + 4
        self.header_event = True
        if self.header_bytes > self.settings.max_header_bytes:
            raise _Refusal(431, "the request headers are too large")
        if request.headers_done:
            return  # a trailer after a chunked body: not part of the contract's map
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1").strip(" \t")
        header = request.header
        previous = header.get(key)
        if previous is None:
            header[key] = text
        else:
            header[key] = previous + ("; " if key == "cookie" else ", ") + text

    def on_headers_complete(self) -> None:
        request = self.current
        assert request is not None
        parser = self.parser
        request.headers_done = True
        request.method = parser.get_method().decode("ascii")
        request.version = parser.get_http_version()
        if request.version not in ("1.1", "1.0"):
            raise _Refusal(505, f"HTTP/{request.version} is not supported")
        header = request.header
        length = header.get("content-length")
        if length is not None and int(length) > self.settings.max_body_bytes:
            raise _Refusal(413, "the request body is too large")
        coding = header.get("transfer-encoding")
        if coding is not None and coding.rpartition(",")[2].strip().lower() == "chunked":
            self.chunked = True
            self.chunk_left = 0
            self.line = b""
            self.line_known = self.head_fed
        expect = header.get("expect")
        if expect is not None and request.version == "1.1":
            if expect.lower() != "100-continue":
                raise _Refusal(417, "only Expect: 100-continue is supported")
            request.expect_continue = True

    def on_chunk_header(self) -> None:
        """A chunk's size line was read: refuse at once a chunk the body limit cannot hold."""
        if not self.line_known or len(self.line) >= _CHUNK_LINE_CAP:
            return  # we did not see the whole line: on_body still enforces the limit
        line = self.line
        end = 0
        while end < len(line) and line[end] in _HEX:
            end += 1
        if not end:
            return
        size = int(line[:end], 16)
        request = self.current
        assert request is not None
        if size > self.settings.max_body_bytes - request.body_len:
            raise _Refusal(413, "a chunk of the request body is larger than the body limit")
        self.chunk_left = size

    def on_body(self, body: bytes) -> None:
        request = self.current
        assert request is not None
        request.body_len += len(body)
        if request.body_len > self.settings.max_body_bytes:
            raise _Refusal(413, "the request body is too large")
        request.body.append(body)

    def on_message_complete(self) -> None:
        request = self.current
        assert request is not None
        self.current = None
        self.chunked = False
        self.tail = b""
        request.keep_alive = self.parser.should_keep_alive()
        if not request.keep_alive:
            self.ended = True
        self.ready.append(request)

    # -- feeding (on the serving thread) --

    def _feed(self, data: memoryview, n: int) -> None:
        """Parse what arrived, in slices so an unfinished header cannot grow unseen."""
        for start in range(0, n, _SLICE):
            piece = data[start : start + _SLICE]
            self.header_event = False
            if not self._feed_parts(piece):
                return
            request = self.current
            if request is not None and not request.headers_done:
                # httptools buffers an unfinished header field or value without telling us;
                # a slice with no header event went entirely into that buffer.
                self.unseen = 0 if self.header_event else self.unseen + len(piece)
                if self.header_bytes + self.unseen > self.settings.max_header_bytes:
                    self.ready.append(_Refusal(431, "the request headers are too large"))
                    self.current = None
                    self.ended = True
                    return

    def _feed_parts(self, piece: memoryview) -> bool:
        """Feed a slice in parts that end where we must know the parser's position.

        A request head is fed up to its blank line; a chunked body line by line
        (a chunk's data, once its size is known, in one part), so that when the
        parser reports a chunk header, the line just fed is its size line.
        """
        size = len(piece)
        pos = 0
        while pos < size:
            request = self.current
            self.head_fed = False
            if self.chunked and request is not None and request.headers_done:
                if self.chunk_left:
                    end = min(size, pos + self.chunk_left)
                    self.chunk_left -= end - pos
                    self.line = b""
                    self.line_known = True  # the CRLF after the data comes next
                else:
                    rest = bytes(piece[pos:])
                    newline = rest.find(b"\n")
                    end = size if newline < 0 else pos + newline + 1
                    if len(self.line) < _CHUNK_LINE_CAP:
                        self.line += rest[: min(end - pos, _CHUNK_LINE_CAP)]
                if not self._feed_slice(piece[pos:end]):
                    return False
                if end > pos and piece[end - 1] == 0x0A:
                    self.line = b""
                    self.line_known = True
                pos = end
                continue
            if request is None or not request.headers_done:
                rest = bytes(piece[pos:])
                tail = self.tail
                found = (tail + rest).find(_HEAD_END)
                if found < 0:
                    end = size
                    self.tail = (tail + rest)[-3:]
                else:
                    end = pos + found + len(_HEAD_END) - len(tail)
                    self.tail = b""
                    self.head_fed = True  # the part ends with the head's blank line
            else:
                end = size  # a Content-Length body
            if not self._feed_slice(piece[pos:end]):
                return False
            pos = end
        return True

    def _feed_slice(self, piece: memoryview) -> bool:
        """Feed the parser; False when nothing more may be parsed on this connection."""
        try:
            self.parser.feed_data(piece)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, _Refusal):
                self.ready.append(cause)
            else:
                log.error("%s: request handling failed: %r", self.label, cause)
                self.ready.append(_Refusal(400, "the request could not be read"))
            self.current = None
            self.ended = True
            return False
        except httptools.HttpParserUpgrade:
            # The request is complete; what follows is another protocol: answer, then close.
            if self.ready and isinstance(self.ready[-1], _Request):
                self.ready[-1].last = True
            self.ended = self.surplus = True
            return False
        except httptools.HttpParserError as exc:
            if self.ended:  # data after a "Connection: close" request is not read
                self.surplus = True
            elif isinstance(exc, httptools.HttpParserInvalidURLError):
                self.ready.append(
                    _Refusal(400, "the request target holds a byte a URI may not (RFC 3986)")
                )
                self.ended = True
            else:
                self.ready.append(_Refusal(400, f"malformed request ({exc})"))
                self.ended = True
            self.current = None
            return False
        return True
