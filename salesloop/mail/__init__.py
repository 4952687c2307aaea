"""Email: rendering (jinja2 templates, inline charts) and SMTP delivery.

``build_alert_email`` / ``build_ml_owner_email`` make the messages; ``salesloop.mail.smtp
.SmtpMailer`` sends them. Rendering imports matplotlib only when a chart is drawn.
"""

from salesloop.mail.render import (
    MAX_CHARTS,
    alert_message_id,
    build_alert_email,
    build_ml_owner_email,
    inline_images,
)

__all__ = [
    "MAX_CHARTS",
    "alert_message_id",
    "build_alert_email",
    "build_ml_owner_email",
    "inline_images",
]
