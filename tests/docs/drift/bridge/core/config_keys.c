    STR("MODEM2MQTT_PORT", modem.port, check_port),
