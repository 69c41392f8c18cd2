"""/api/v1/automation: rules (list, make, read, change, delete, replay), settings and business hours.

Every rule and number is the API key's tenant's (another tenant's is 404 ``not_found``); the plan must
include automation (403 ``feature_not_in_plan``, with the upgrade link).
"""
from __future__ import annotations

from flask import jsonify

from saas.api.requests import current_rights, current_tenant, json_object
from saas.automation import replay, rules, setup
from saas.automation.models import FEATURE
from saas.timeutil import iso


def _tenant():
    current_rights().require(FEATURE, "automation")
    return current_tenant()


def rule_json(rule) -> dict:
    return {"id": rule.id, "object": "automation_rule", "name": rule.name, "enabled": rule.enabled,
            "priority": rule.priority, "stop_after_match": rule.stop_after_match, "trigger": rule.trigger,
            "match": rule.match, "pattern": rule.pattern, "conditions": rule.conditions or {},
            "actions": rule.actions or [], "created_at": iso(rule.created_at), "updated_at": iso(rule.updated_at)}


def hours_json(number, row) -> dict:
    return {"number_id": number.id, "weekly": row.weekly if row else {}, "holidays": row.holidays if row else [],
            "set": row is not None}


def settings_json(row) -> dict:
    return {"timezone": row.timezone, "replies_per_hour": row.replies_per_hour}


def list_rules():
    return jsonify({"data": [rule_json(r) for r in rules.rules_of(_tenant())]})


def create_rule():
    tenant = _tenant()
    return jsonify(rule_json(rules.create_rule(tenant, json_object()))), 201


def get_rule(rule_id):
    return jsonify(rule_json(rules.get_rule(_tenant(), rule_id)))


def update_rule(rule_id):
    tenant = _tenant()
    return jsonify(rule_json(rules.update_rule(tenant, rule_id, json_object())))


def delete_rule(rule_id):
    rules.delete_rule(_tenant(), rule_id)
    return "", 204


def replay_rule(rule_id):
    return jsonify(replay.replay(_tenant(), rule_id))


def get_settings():
    return jsonify(settings_json(setup.settings_of(_tenant())))


def change_settings():
    tenant = _tenant()
    return jsonify(settings_json(setup.change_settings(tenant, json_object())))


def get_hours(number_id):
    tenant = _tenant()
    number = setup.number_of(tenant, number_id)
    return jsonify(hours_json(number, setup.hours_of(tenant, number.id)))


def set_hours(number_id):
    tenant = _tenant()
    number = setup.number_of(tenant, number_id)
    return jsonify(hours_json(number, setup.set_hours(tenant, number.id, json_object())))


def clear_hours(number_id):
    tenant = _tenant()
    setup.clear_hours(tenant, number_id)
    return "", 204


def register(bp) -> None:
    bp.add_url_rule("/automation/rules", "list_automation_rules", list_rules, methods=["GET"])
    bp.add_url_rule("/automation/rules", "create_automation_rule", create_rule, methods=["POST"])
    bp.add_url_rule("/automation/rules/<rule_id>", "get_automation_rule", get_rule, methods=["GET"])
    bp.add_url_rule("/automation/rules/<rule_id>", "update_automation_rule", update_rule, methods=["PATCH"])
    bp.add_url_rule("/automation/rules/<rule_id>", "delete_automation_rule", delete_rule, methods=["DELETE"])
    bp.add_url_rule("/automation/rules/<rule_id>/replay", "replay_automation_rule", replay_rule, methods=["POST"])
    bp.add_url_rule("/automation/settings", "get_automation_settings", get_settings, methods=["GET"])
    bp.add_url_rule("/automation/settings", "change_automation_settings", change_settings, methods=["PATCH"])
    bp.add_url_rule("/automation/hours/<number_id>", "get_business_hours", get_hours, methods=["GET"])
    bp.add_url_rule("/automation/hours/<number_id>", "set_business_hours", set_hours, methods=["PUT"])
    bp.add_url_rule("/automation/hours/<number_id>", "clear_business_hours", clear_hours, methods=["DELETE"])
