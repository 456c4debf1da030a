"""The approval pattern, end to end in one process: a refund waits for an `approve`
event with a model; one is approved, one declined, one expires.

    python examples/approval.py [sqlite:///approvals.db]

On a worker the waiting runs would hold no slot (status `waiting`); here, in-process,
each waits on its own thread. See docs/waits.md.
"""

from __future__ import annotations

import sys
from datetime import timedelta

from pydantic import BaseModel

import flowledger as fl


class Approval(BaseModel):
    approved: bool
    by: str
    note: str = ""


@fl.step()
def draft_refund(order: str) -> dict[str, object]:
    return {"order": order, "amount": 120}


@fl.step()
def pay_refund(refund: dict[str, object], approval: Approval) -> str:
    return f"refunded {refund['amount']} for {refund['order']} (approved by {approval.by})"


@fl.workflow(name="refund")
def refund(order: str, patience: float = 2 * 24 * 3600) -> str:
    proposal = draft_refund(order)
    try:
        decision = fl.wait_for_event("approve", timeout=timedelta(seconds=patience),
                                     model=Approval)
    except fl.WaitTimeout:
        return f"{order}: expired, nobody approved in time"
    if not decision.approved:
        return f"{order}: declined by {decision.by}: {decision.note}"
    return pay_refund(proposal, decision)


def main(url: str) -> None:
    with fl.Ledger(url) as ledger:
        approved = ledger.start(refund, "A-17")
        declined = ledger.start(refund, "B-4")
        expired = ledger.start(refund, "C-9", patience=0.2)
        # Sent at once: an event that arrives before its wait is kept for it.
        ledger.send_event(approved.id, "approve", {"approved": True, "by": "ana"})
        ledger.send_event(declined.id, "approve",
                          Approval(approved=False, by="bo", note="already refunded"))
        for handle in (approved, declined, expired):
            print(handle.result(timeout=30))
        wait = ledger.get(approved.id).steps[1]
        print(f"run {approved.id}: step {wait.position} {wait.name} -> {wait.output}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "sqlite:///approvals.db")
