"""Webhook subscriptions of the caller's owner, their deliveries and attempts; another
owner's ids are not found (404)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import JSONResponse

from .auth import CallerDep
from .params import ERRORS
from .schemas import (
    AddWebhook,
    ChangeWebhook,
    DeliveryStatusName,
    WebhookAttemptOut,
    WebhookDeliveryOut,
    WebhookOut,
)

router = APIRouter(tags=["webhooks"])
WebhookId = Annotated[str, Path(pattern=r"^wh_[0-9a-f]{16}$", description="A webhook id.")]
DeliveryId = Annotated[str, Path(pattern=r"^msg_[0-9a-f]{32}$",
                                 description="A delivery id (its webhook-id header).")]
Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many, newest first.")]


@router.post("/webhooks", response_model=WebhookOut, status_code=201, responses=ERRORS,
             response_model_exclude_unset=True,
             summary="Subscribe a URL to run events (the answer holds its secret, once)")
def add_webhook(body: AddWebhook, caller: CallerDep) -> JSONResponse:
    """Deliveries are signed per Standard Webhooks with the ``secret`` of this answer,
    which is never shown again. Targets on loopback, private, link-local or metadata
    addresses are refused unless the server allows them."""
    hook = caller.ledger.add_webhook(body.url, body.events, owner=caller.token.owner)
    return JSONResponse(hook.to_dict(), 201)


@router.get("/webhooks", response_model=list[WebhookOut], responses=ERRORS,
            response_model_exclude_unset=True, summary="Webhook subscriptions, oldest first")
def list_webhooks(caller: CallerDep) -> list[dict[str, Any]]:
    return [hook.to_dict() for hook in caller.ledger.webhooks()]


# Delivery routes come before /webhooks/{webhook_id}: "deliveries" is not a webhook id.
@router.get("/webhooks/deliveries", response_model=list[WebhookDeliveryOut],
            responses=ERRORS, summary="Deliveries of every subscription, newest first")
def list_all_deliveries(caller: CallerDep, status: DeliveryStatusName | None = None,
                        limit: Limit = 50) -> list[dict[str, Any]]:
    return [d.to_dict() for d in caller.ledger.webhook_deliveries(status=status, limit=limit)]


@router.get("/webhooks/deliveries/{delivery_id}", response_model=WebhookDeliveryOut,
            responses=ERRORS, summary="One delivery")
def get_delivery(delivery_id: DeliveryId, caller: CallerDep) -> dict[str, Any]:
    return caller.ledger.webhook_delivery(delivery_id).to_dict()


@router.get("/webhooks/deliveries/{delivery_id}/attempts",
            response_model=list[WebhookAttemptOut], responses=ERRORS,
            summary="Every attempt of a delivery: status code, latency, error")
def list_attempts(delivery_id: DeliveryId, caller: CallerDep) -> list[dict[str, Any]]:
    return [a.to_dict() for a in caller.ledger.webhook_attempts(delivery_id)]


@router.post("/webhooks/deliveries/{delivery_id}/redeliver",
             response_model=WebhookDeliveryOut, responses=ERRORS,
             summary="Send a failed (or delivered) delivery again, with the same id")
def redeliver(delivery_id: DeliveryId, caller: CallerDep) -> dict[str, Any]:
    return caller.ledger.redeliver(delivery_id).to_dict()


@router.get("/webhooks/{webhook_id}", response_model=WebhookOut, responses=ERRORS,
            response_model_exclude_unset=True, summary="One webhook subscription")
def get_webhook(webhook_id: WebhookId, caller: CallerDep) -> dict[str, Any]:
    return caller.ledger.webhook(webhook_id).to_dict()


@router.patch("/webhooks/{webhook_id}", response_model=WebhookOut, responses=ERRORS,
              response_model_exclude_unset=True, summary="Enable or disable a webhook")
def change_webhook(webhook_id: WebhookId, body: ChangeWebhook,
                   caller: CallerDep) -> dict[str, Any]:
    ledger = caller.ledger
    hook = (ledger.enable_webhook(webhook_id) if body.enabled
            else ledger.disable_webhook(webhook_id))
    return hook.to_dict()


@router.delete("/webhooks/{webhook_id}", status_code=204, responses=ERRORS,
               summary="Delete a webhook with its deliveries")
def delete_webhook(webhook_id: WebhookId, caller: CallerDep) -> Response:
    caller.ledger.remove_webhook(webhook_id)
    return Response(status_code=204)


@router.get("/webhooks/{webhook_id}/deliveries", response_model=list[WebhookDeliveryOut],
            responses=ERRORS, summary="A webhook's deliveries, newest first")
def list_deliveries(webhook_id: WebhookId, caller: CallerDep,
                    status: DeliveryStatusName | None = None,
                    limit: Limit = 50) -> list[dict[str, Any]]:
    return [d.to_dict() for d in
            caller.ledger.webhook_deliveries(webhook_id, status=status, limit=limit)]
