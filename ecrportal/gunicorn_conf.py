"""Gunicorn settings, shared by `make run` and the Docker image."""

import os

bind = os.environ.get("ECRPORTAL_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("ECRPORTAL_WEB_WORKERS", "2"))
worker_class = "gthread"
# /readyz waits for a worker's answer; threads keep the other requests flowing meanwhile.
threads = int(os.environ.get("ECRPORTAL_WEB_THREADS", "4"))
timeout = 60
graceful_timeout = 20
accesslog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# The portal needs no runtime control socket; several instances may share a host.
control_socket_disable = True
