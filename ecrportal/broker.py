"""The Redis transport of the portal's Celery: kombu's own, but for three fixes of a worker
that lost Redis for a moment (issue 25 §2.5; kombu 5.7.0, redis-py 8.1.0, the newest
releases; tests/integration/test_worker_broker_restarts.py brings each about on purpose).
The first two left the worker connected, silent and consuming nothing, for good; the third
stopped it:

- **A failed acknowledgement kept its place.** kombu's Redis transport counts a message a
  worker took against the prefetch limit until its acknowledgement (ZREM and HDEL of the
  unacknowledged index) has reached Redis. When that call fails ("Couldn't ack …"), the
  message stays counted for ever; once a worker has as many such messages as processes, it
  never asks Redis for work again, and nothing tells its consumer anything is wrong.
  Here a message whose acknowledgement or rejection failed no longer counts: the worker is
  done with it either way. The failure still raises (Celery logs it); Redis keeps the
  message as unacknowledged and hands it out again after the visibility timeout, as for a
  worker that died, so the portal's tasks stay at least once and idempotent.
- **The control subscription blocked the event loop.** When the poller finds the pub/sub
  socket (Celery's remote control) readable, kombu reads it with a blocking
  `parse_response()`. If what is there is the end of the connection (Redis restarted),
  redis-py reconnects inside that call and then waits on the new connection, without a
  timeout, for a message that may never come: the worker's one thread stops there.
  Here the socket is asked first whether a reply is there: the end of the connection then
  raises a connection error, which the consumer recovers from as from any other (it
  reconnects everything), and a read never waits.
- **A channel closed after its transport.** After a loss Celery's consumer lets the
  transport go, then closes its connection; a channel the first attempt could not close
  (Redis gone) then restores its unacknowledged messages through the transport that is no
  more: "AttributeError: 'NoneType' object has no attribute 'hostname'", not a connection
  error, so the worker stopped ("Unrecoverable error"). Here it is a connection error,
  which the consumer ignores while closing; Redis hands those messages out again after the
  visibility timeout.
"""

from kombu.transport import TRANSPORT_ALIASES, redis, virtual


class QoS(redis.QoS):
    def ack(self, delivery_tag):
        try:
            super().ack(delivery_tag)
        except Exception:
            virtual.QoS.ack(self, delivery_tag)  # the local count only: no Redis call
            raise

    def reject(self, delivery_tag, requeue=False):
        try:
            super().reject(delivery_tag, requeue=requeue)
        except Exception:
            virtual.QoS.ack(self, delivery_tag)
            raise


class Channel(redis.Channel):
    QoS = QoS

    def _receive(self):
        connection = self.subclient.connection
        if connection is not None and not connection.can_read(timeout=0):
            return False
        return super()._receive()

    def _connparams(self, asynchronous=False):
        if self.connection.client is None:
            raise redis.get_redis_ConnectionError()("The connection to Redis is closed.")
        return super()._connparams(asynchronous=asynchronous)


class Transport(redis.Transport):
    Channel = Channel


def register() -> None:
    """Make this the transport of redis:// and rediss:// broker URLs in this process, in
    place of kombu's (whose names kombu looks up in TRANSPORT_ALIASES when it connects):
    the URL and what kombu does with its scheme (TLS for rediss://, the address in the
    logs) stay as they are. Called by ecrportal/celery.py before the app exists."""
    for scheme in ("redis", "rediss"):
        TRANSPORT_ALIASES[scheme] = f"{__name__}:Transport"
