"""Specs registered in the ledger: owners store workflow specs by name (versioned), list
and fetch them, and start runs of them by name — over HTTP, on any worker, without the
file. A part of ``Ledger``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import ids
from .errors import SpecNotFound, SpecVersionConflict
from .ledgerbase import LedgerBase
from .models import from_micros
from .store import SpecRow

if TYPE_CHECKING:
    from .specs import Spec


@dataclass(frozen=True)
class SpecInfo:
    """A registered spec: name, version, content digest, when, and its text.

    Example: ``[info.version for info in ledger.specs("triage")]``
    """

    name: str
    version: str
    digest: str
    owner: str
    registered_at: datetime | None
    description: str | None
    steps: tuple[str, ...]
    inputs: dict[str, Any]
    text: str

    def to_dict(self, *, text: bool = True) -> dict[str, Any]:
        """JSON-ready form (with the spec's text unless ``text=False``)."""
        found = {"name": self.name, "version": self.version, "digest": self.digest,
                 "owner": self.owner,
                 "registered_at": self.registered_at.isoformat() if self.registered_at
                 else None, "description": self.description, "steps": list(self.steps),
                 "inputs": self.inputs}
        if text:
            found["text"] = self.text
        return found


def _info(row: SpecRow) -> SpecInfo:
    from .specs.document import recorded_spec  # noqa: PLC0415 (start-up time)

    spec = recorded_spec(row.text, f"<registered spec {row.name}>")
    inputs = {name: declared.model_dump(exclude_unset=True)
              for name, declared in spec.model.inputs.items()}
    return SpecInfo(row.name, row.version, row.digest, row.owner,
                    None if row.registered_at is None else from_micros(row.registered_at),
                    spec.model.description, tuple(spec.step_ids), inputs, row.text)


class LedgerSpecs(LedgerBase):
    """Registering and finding workflow specs (see the module)."""

    def register_spec(self, text: str, *, owner: str | None = None,
                      file: str = "<spec>") -> SpecInfo:
        """Validate a spec text (YAML or JSON) and register it under its name and version
        for the owner. Registering the same text again changes nothing; another text under
        an explicit version already registered raises SpecVersionConflict. Raises
        SpecError (every problem, with line and column) for an invalid spec.

        Example: ``ledger.register_spec(Path("triage.yaml").read_text())``
        """
        from .specs import parse_spec  # noqa: PLC0415 (start-up time)

        spec = parse_spec(text, file)
        who = self._owner_for(owner)
        now = ids.now_us()
        row = self.store.register_spec(SpecRow(who, spec.digest, spec.name, spec.version,
                                               spec.text, now, now))
        if row.digest != spec.digest:
            raise SpecVersionConflict(
                f"spec {spec.name!r} version {spec.version!r} is already registered with "
                f"another text (digest {row.digest[:12]}); change version:, or leave it "
                "out to version the spec by its content")
        return _info(row)

    def specs(self, name: str | None = None) -> list[SpecInfo]:
        """Registered specs (this Ledger's owner, or every owner's for an unscoped
        Ledger), by name, newest registration first.

        Example: ``for info in ledger.specs(): print(info.name, info.version)``
        """
        return [_info(row) for row in self.store.registered_specs(self.owner, name)]

    def spec_info(self, name: str, version: str | None = None, *,
                  owner: str | None = None) -> SpecInfo:
        """The registered spec ``name`` (its newest registration, or ``version``).
        Raises SpecNotFound.

        Example: ``print(ledger.spec_info("triage").text)``
        """
        who = self._owner_for(owner)
        found = self.store.registered_specs(who, name, version)
        if not found:
            which = f"{name!r}" + (f" version {version!r}" if version is not None else "")
            raise SpecNotFound(f"no spec {which} is registered for owner {who!r}")
        return _info(found[0])

    def spec(self, name: str, version: str | None = None, *,
             owner: str | None = None) -> Spec:
        """The registered spec ``name`` as a runnable ``Spec`` (newest, or ``version``).

        Example: ``ledger.submit(ledger.spec("triage"), issue=42)``
        """
        from .specs.document import recorded_spec  # noqa: PLC0415 (start-up time)

        info = self.spec_info(name, version, owner=owner)
        return recorded_spec(info.text, f"<registered spec {name}>")

    def unregister_spec(self, name: str, version: str | None = None, *,
                        owner: str | None = None) -> int:
        """Remove a registration (one version, or every version). Runs of it keep their
        recorded text. Returns how many registrations were removed.

        Example: ``ledger.unregister_spec("triage", "3")``
        """
        return self.store.unregister_spec(self._owner_for(owner), name, version)


__all__ = ["LedgerSpecs", "SpecInfo"]
