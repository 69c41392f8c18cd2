"""The platform's back office: what the admin console reads and does about tenants.

Not a face: functions take what they need (a session, a tenant id, the time,
the past-due grace, the metering port) and return plain data (saas.back_office.records),
so the console, the CLI or a job can call them alike. It reads tenants,
billing, metering and messaging; nothing below it imports it.
"""
