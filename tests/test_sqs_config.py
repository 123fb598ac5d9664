"""The SQS queue a deployer creates (infra/aws/sqs.json) fits the consumer function
(worker_app/.chalice/config.json): its visibility timeout is at least 6 times the function's
timeout, as AWS advises for a Lambda event source, so a message is not delivered again while
a first delivery still runs; and it has a dead-letter queue."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from worker_app import sqs_consumer

ROOT = Path(__file__).resolve().parent.parent
CHALICE_DEFAULT_TIMEOUT_S = 60  # what Chalice deploys when nothing says otherwise
LAMBDA_MAX_TIMEOUT_S = 900


def _template() -> dict[str, Any]:
    return dict(json.loads((ROOT / "infra/aws/sqs.json").read_text()))


def _queue() -> dict[str, Any]:
    [queue] = [
        r["Properties"]
        for name, r in _template()["Resources"].items()
        if r["Type"] == "AWS::SQS::Queue" and "RedrivePolicy" in r["Properties"]
    ]
    return dict(queue)


def consumer_timeouts(config: dict[str, Any]) -> dict[str, int]:
    """Stage -> the consumer function's lambda_timeout, as Chalice resolves it: the
    function's own, else the stage's, else the top level's, else Chalice's default."""
    top = config.get("lambda_timeout", CHALICE_DEFAULT_TIMEOUT_S)
    found = {}
    for stage, values in config["stages"].items():
        own = values.get("lambda_functions", {}).get(sqs_consumer.CONSUMER, {})
        found[stage] = int(own.get("lambda_timeout", values.get("lambda_timeout", top)))
    return found


def test_the_visibility_timeout_is_six_times_the_consumers_timeout() -> None:
    config = json.loads((ROOT / "worker_app/.chalice/config.json").read_text())
    timeouts = consumer_timeouts(config)
    assert timeouts, "no stage deploys the consumer"
    visibility = int(_queue()["VisibilityTimeout"])
    for stage, timeout in timeouts.items():
        assert 0 < timeout <= LAMBDA_MAX_TIMEOUT_S, stage
        assert visibility >= 6 * timeout, (stage, visibility, timeout)


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"stages": {"dev": {}}}, {"dev": 60}),
        ({"lambda_timeout": 100, "stages": {"dev": {}}}, {"dev": 100}),
        ({"stages": {"prod": {"lambda_timeout": 300}}}, {"prod": 300}),
        (
            {
                "stages": {
                    "p": {
                        "lambda_timeout": 30,
                        "lambda_functions": {"sqs_consume": {"lambda_timeout": 900}},
                    }
                }
            },
            {"p": 900},
        ),
    ],
)
def test_the_consumers_timeout_is_read_as_chalice_reads_it(
    config: dict[str, Any], expected: dict[str, int]
) -> None:
    assert consumer_timeouts(config) == expected


def test_the_queue_has_a_dead_letter_queue() -> None:
    policy = _queue()["RedrivePolicy"]
    assert policy["deadLetterTargetArn"] == {"Fn::GetAtt": ["JobsDeadLetterQueue", "Arn"]}
    assert 1 < policy["maxReceiveCount"] <= 10
    assert "JobsDeadLetterQueue" in _template()["Resources"]
