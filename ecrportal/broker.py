"""The Redis transport of the portal's Celery: kombu's own, but for two fixes.

Both left a worker that had lost Redis for a moment connected, silent and consuming
nothing, for good (issue 25 §2.5; kombu 5.7.0, redis-py 8.1.0, the newest releases;
tests/integration/test_worker_broker_restarts.py):

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
"""

from kombu.transport import redis, virtual


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


class Transport(redis.Transport):
    Channel = Channel
