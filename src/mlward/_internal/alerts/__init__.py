"""Alerts: tell people when the gate finds a violation, once.

``config`` validates the ``[alerts]`` settings table; ``send`` builds each channel's message
(generic webhook signed with HMAC-SHA256, Slack, Microsoft Teams, e-mail over STARTTLS) and
delivers it with retries; ``state`` decides what is new against the last gate run the ledger
recorded. A failed delivery never changes the gate's verdict: it is reported, recorded and
retried on the next run.
"""
