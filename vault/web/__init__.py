"""The web interface under ``/ui/``: server-rendered pages (Jinja2, htmx) in Japanese and
English, for the people who will not use curl.

Pages parse and answer; the work is done by the same services, under the same guard and with
the same audit events, as the API's.  Only the way a caller proves who they are differs: a
session cookie set by password sign-in instead of a bearer token.
"""
