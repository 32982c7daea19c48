"""Celery tasks of the registry: thin wrappers around farm.publishing."""

from celery import shared_task

from farm import publishing


@shared_task(bind=True, name="farm.tasks.publish_exports", ignore_result=True, max_retries=None)
def publish_exports_task(self) -> dict:
    """The coalesced publish; comes back later when the window or the lease says so."""
    result = publishing.publish()
    if "retry_in" in result:
        raise self.retry(countdown=result["retry_in"])
    return result
