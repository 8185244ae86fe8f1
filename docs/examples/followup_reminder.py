"""See an agency's reminder arrive: import a consultation held six months ago (as the meeting
service publishes it, e.g. when history from before the platform is imported), then read the
agency's own queue as the agency does.

    .venv/bin/python docs/examples/followup_reminder.py --party AF

With `make run` running. The follow-up service schedules the plan check and the six-month
follow-up; both are already due, so FollowUpDue for each arrives at once in the agency's queue.
"""

import argparse
import asyncio
import json
import os
import uuid
from datetime import UTC, date, datetime, timedelta

import aio_pika


async def main(party: str) -> None:
    namespace = os.environ.get("TRISAM_NAMESPACE", "trisam")
    host = os.environ.get("TRISAM_AMQP_HOST", "127.0.0.1:5672")
    held_on = date.today() - timedelta(days=190)
    case_ref = "TS-DEMO" + uuid.uuid4().hex[:9].upper()
    event_id = str(uuid.uuid4())
    consultation = {
        "event_id": event_id, "event_type": "ConsultationHeld", "version": 1,
        "occurred_at": datetime.now(UTC).isoformat(), "producer": "history-import",
        "correlation_id": event_id,
        "payload": {
            "case_ref": case_ref, "team_id": "GAVLE-BRYNAS", "municipality": "Gävle",
            "meeting_id": f"GAVLE-BRYNAS-{held_on:%Y%m%d}", "meeting_date": str(held_on),
            "held_on": str(held_on), "referring_party": party,
            "referred_at": datetime.combine(held_on - timedelta(days=30), datetime.min.time(),
                                            tzinfo=UTC).isoformat(),
            "parties_present": ["AF", "FK", "KOMMUN", "REGION"], "others_invited": [],
            "individual_attended": True,
            "actions": [{"type": "sip", "responsible_party": "KOMMUN",
                         "due_on": str(held_on + timedelta(days=30))}],
            "recorded_at": datetime.now(UTC).isoformat()}}
    service_user = f"{namespace}-svc-meeting"  # the meeting service's broker user (dev password)
    async with await aio_pika.connect(f"amqp://{service_user}:{service_user}-dev@{host}/") as conn:
        channel = await conn.channel(publisher_confirms=True, on_return_raises=True)
        events = await channel.get_exchange(f"{namespace}.events")
        await events.publish(aio_pika.Message(json.dumps(consultation).encode(), message_id=event_id,
                                              type="ConsultationHeld", content_type="application/json",
                                              delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                             routing_key="ConsultationHeld", mandatory=True)
    print(f"consultation of {case_ref} held on {held_on} published")

    agency = f"{namespace}-{party.lower()}"  # the agency reads its own queue only
    async with await aio_pika.connect(f"amqp://{agency}:{agency}-dev@{host}/") as conn:
        channel = await conn.channel()
        queue = await channel.get_queue(f"{namespace}.agency.{party}", ensure=False)
        seen = 0
        for _ in range(300):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                await asyncio.sleep(0.1)
                continue
            body = json.loads(message.body)
            if body["payload"].get("case_ref") == case_ref:
                await message.ack()
                print(f"{body['event_type']}: {body['payload']['kind']} due {body['payload']['due_on']}")
                seen += 1
                if seen == 2:
                    return
            else:
                await message.nack(requeue=True)  # someone else's message: leave it
                await asyncio.sleep(0.05)
    raise SystemExit("no reminder within 30 s: is `make run` running?")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--party", default="AF", choices=["AF", "FK", "KOMMUN", "REGION"])
    asyncio.run(main(parser.parse_args().party))
