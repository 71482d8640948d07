"""MQTT deliveries: the event JSON published with QoS 1 to the rule's topic on the broker of
``EI_MQTT_URL``, through paho-mqtt.

paho's network loop runs in its own thread and reconnects by itself (1 s doubling to 30 s), so
a broker that goes away comes back without anyone's help. While it is away a delivery fails at
once (counted) rather than piling up in paho's queue; once published, a delivery waits for the
broker's PUBACK up to the timeout. The URL's password is never logged (core.redact).
"""

from __future__ import annotations

import logging
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from .delivery import Delivery, parse_mqtt_url

log = logging.getLogger(__name__)

QOS = 1
DEFAULT_TIMEOUT = 5.0
#: Messages paho may hold unacknowledged: a bound on its memory if the broker stalls.
MAX_QUEUED = 1000


class MqttPublisher:
    """One broker connection for every MQTT sink of the process."""

    def __init__(self, url: str, client_id: str = "", timeout: float = DEFAULT_TIMEOUT) -> None:
        target = parse_mqtt_url(url)
        self.timeout = timeout
        self._where = f"{target.host}:{target.port}"
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                                  protocol=mqtt.MQTTv311)
        if target.username is not None:
            self.client.username_pw_set(target.username, target.password)
        if target.tls:
            self.client.tls_set()
        self.client.max_queued_messages_set(MAX_QUEUED)
        self.client.reconnect_delay_set(1, 30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.connect_async(target.host, target.port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, _client: Any, _userdata: Any, _flags: Any, reason: Any,
                    _props: Any) -> None:
        if reason.is_failure:
            log.warning("MQTT broker %s refused the connection: %s", self._where, reason)
        else:
            log.info("MQTT broker %s connected", self._where)

    def _on_disconnect(self, _client: Any, _userdata: Any, _flags: Any, reason: Any,
                       _props: Any) -> None:
        log.warning("MQTT broker %s disconnected (%s); reconnecting", self._where, reason)

    @property
    def connected(self) -> bool:
        return bool(self.client.is_connected())

    def __call__(self, delivery: Delivery) -> bool:
        if not self.connected:
            log.info("MQTT event %s to %r not published: broker %s is not connected",
                     delivery.event_id, delivery.target, self._where)
            return False
        info = self.client.publish(delivery.target, delivery.payload, qos=QOS)
        try:
            info.wait_for_publish(self.timeout)
        except (ValueError, RuntimeError) as exc:
            log.info("MQTT event %s to %r not published: %s", delivery.event_id,
                     delivery.target, exc)
            return False
        if not info.is_published():
            log.info("MQTT event %s to %r: no PUBACK within %.1f s", delivery.event_id,
                     delivery.target, self.timeout)
            return False
        return True

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
