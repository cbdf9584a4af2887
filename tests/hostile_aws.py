"""A stand-in for AWS that fails (tests only): a plain HTTP server on 127.0.0.1 that answers
every request with the status, content type and body it was last told, as a proxy, a
misconfigured endpoint or AWS itself might; or, while held, answers nothing yet (a slow
AWS)."""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SIGNATURE_XML = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">'
    b"<Error><Type>Sender</Type><Code>SignatureDoesNotMatch</Code>"
    b"<Message>The request signature we calculated does not match the signature you "
    b"provided. Check your AWS Secret Access Key and signing method.</Message></Error>"
    b"<RequestId>4f6c2d0e-hostile-request</RequestId></ErrorResponse>"
)
BAD_GATEWAY_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx/1.25.3</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
GARBAGE = b"\x00\x9c\xff garbage {{{ <<not json>> \xfe\x01"

# (status, content type, body): the three answers the tests put the portal through.
SIGNATURE = (403, "text/xml", SIGNATURE_XML)
BAD_GATEWAY = (502, "text/html", BAD_GATEWAY_HTML)
BROKEN = (500, "application/octet-stream", GARBAGE)


class HostileAws:
    """Answers every POST with `answer` (status, content type, body); counts requests.
    After hold(), requests wait for release() before they are answered."""

    def __init__(self, answer=SIGNATURE):
        self.answer = answer
        self.requests = 0
        self._released = threading.Event()
        self._released.set()
        hostile = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                hostile.requests += 1
                hostile._released.wait(timeout=120)
                status, content_type, body = hostile.answer
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def hold(self):
        self._released.clear()

    def release(self):
        self._released.set()

    def close(self):
        self.release()
        self.server.shutdown()
        self.server.server_close()
