import logging

from celery import shared_task

from ticks.bars import tasks as bars_tasks  # noqa: F401 - autodiscovery imports ticks.tasks only: registers bars.*
from ticks.models import BrokerAccount
from ticks.services import instruments_refresh_from_kite

logger = logging.getLogger(__name__)


@shared_task(name="ticks.instruments_refresh", soft_time_limit=120, time_limit=180)
def instruments_refresh() -> dict[str, int]:
    """Daily 08:30 IST: reload Kite's dump through the first healthy enabled account."""
    account = BrokerAccount.objects.filter(enabled=True, health=BrokerAccount.Health.OK).first()
    if account is None:
        logger.warning("instruments refresh skipped: no enabled healthy broker account")
        return {"upserted": 0, "deactivated": 0}
    result = instruments_refresh_from_kite(account=account)
    return {"upserted": result.upserted, "deactivated": result.deactivated}
