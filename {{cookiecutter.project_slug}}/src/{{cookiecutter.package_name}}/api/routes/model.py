"""/model: what is being served."""

from __future__ import annotations

from fastapi import APIRouter

from ..deps import UNAUTHORIZED, ApiKeyDep, ChampionDep, StateDep
from ..schemas import ModelInfo, RolloutInfo
from ..state import ServiceState


def rollout_info(state: ServiceState) -> RolloutInfo:
    """The rollout running, or the one asked for and why it is off."""
    rollout, asked = state.rollout, state.settings.serve.rollout
    if rollout is None:
        problem = None if asked == "off" else state.rollout_problem
        return RolloutInfo(mode="off", challenger_share=0.0, problem=problem)
    share = 0.0 if rollout.mode == "shadow" else rollout.share
    return RolloutInfo(
        mode=rollout.mode, challenger_version=rollout.challenger.version, challenger_share=share
    )


def build_router(auth: bool) -> APIRouter:
    """/model, behind the API key when `auth` (documented so only then)."""
    router = APIRouter(tags=["model"])

    @router.get(
        "/model",
        response_model=ModelInfo,
        dependencies=[ApiKeyDep] if auth else [],
        responses={**(UNAUTHORIZED if auth else {}), 503: {"description": "No servable model"}},
    )
    async def model_info(champion: ChampionDep, state: StateDep) -> ModelInfo:
        """Registry name, version and alias, held-out metrics and the data contract."""
        metadata = champion.metadata
        return ModelInfo(
            name=str(metadata.get("model_name", "")),
            version=champion.version,
            alias=str(metadata.get("alias", "")),
            task=str(champion.task),
            run_id=str(metadata.get("run_id", "")),
            exported_at=str(metadata.get("exported_at", "")),
            model_sha256=str(metadata.get("model_sha256", "")),
            runtime=champion.runtime,
            metrics={str(key): float(value) for key, value in metadata.get("metrics", {}).items()},
            contract=champion.contract.model_dump(mode="json", exclude_none=True),
            rollout=rollout_info(state),
        )

    return router
