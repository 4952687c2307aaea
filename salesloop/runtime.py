"""Wiring: the ports of one environment, built from settings (used by the function and the CLI)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from salesloop.config import Settings, load_settings
from salesloop.dead_letter import GiveUpRule, open_dead_letter
from salesloop.logging import configure, register_secret
from salesloop.on_sale import OnSaleHandler
from salesloop.warehouse import Warehouse, open_warehouse


def registry_dir(settings: Settings) -> Path:
    return Path(os.environ.get("SALESLOOP_REGISTRY", settings.run_dir / "registry"))


def smtp_password(settings: Settings) -> str | None:
    if not settings.smtp.username:
        return None
    from salesloop.secrets import open_secret_store

    password = open_secret_store(settings).get(settings.smtp.secret_name)
    register_secret(password)
    return password


@dataclass
class Runtime:
    settings: Settings
    warehouse: Warehouse
    handler: OnSaleHandler
    # What the function calls: the handler behind the give-up rule (salesloop.dead_letter).
    on_event: GiveUpRule

    @classmethod
    def from_settings(cls, settings: Settings) -> Runtime:
        from salesloop.mail.smtp import SmtpMailer
        from salesloop.predictor import open_predictor

        warehouse = open_warehouse(settings)
        predictor: Any = open_predictor(settings, registry_dir(settings))
        mailer = SmtpMailer(settings.smtp, smtp_password(settings))
        handler = OnSaleHandler(settings, warehouse, predictor, mailer.send)
        on_event = GiveUpRule(
            handler, open_dead_letter(settings), max_age_s=settings.events.dead_letter_after_s
        )
        return cls(settings, warehouse, handler, on_event)

    @classmethod
    def from_environment(cls) -> Runtime:
        configure(os.environ.get("SALESLOOP_LOG_LEVEL", "INFO"))
        return cls.from_settings(load_settings())
