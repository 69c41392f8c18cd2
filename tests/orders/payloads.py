"""Shop webhook payloads shaped as the platforms document them.

Shopify: the sample bodies its webhook reference shows for ``orders/create``, ``orders/paid``,
``orders/cancelled`` (an Order resource: id 820982911946154508, name "#9999") and ``fulfillments/create``
/ ``fulfillments/update`` (a Fulfillment: id 123456, order_id, tracking_company, tracking_number(s),
tracking_url(s), shipment_status, destination), trimmed to the fields read and a few beside them. The
samples' phone numbers ("555-625-1199") have no country code; the customer's is a real one here.
WooCommerce: an order webhook body (the REST API's order resource, v3: id, number, status, currency,
total, billing, shipping, line_items, date_*_gmt), as order.created / order.updated send it.
"""
from __future__ import annotations

import copy

ORDER_ID = 820982911946154508
PHONE = "+905320000002"

SHOPIFY_ORDER = {
    "id": ORDER_ID,
    "admin_graphql_api_id": f"gid://shopify/Order/{ORDER_ID}",
    "app_id": None,
    "browser_ip": None,
    "buyer_accepts_marketing": True,
    "cancel_reason": None,
    "cancelled_at": None,
    "cart_token": None,
    "checkout_id": None,
    "confirmed": False,
    "contact_email": "jon@example.com",
    "created_at": "2021-12-31T19:00:00-05:00",
    "currency": "USD",
    "current_total_price": "398.00",
    "email": "jon@example.com",
    "financial_status": "voided",
    "fulfillment_status": "pending",
    "name": "#9999",
    "note": None,
    "number": 234,
    "order_number": 1234,
    "phone": None,
    "presentment_currency": "USD",
    "processed_at": "2021-12-31T19:00:00-05:00",
    "subtotal_price": "388.00",
    "tags": "tag1, tag2",
    "test": True,
    "total_price": "398.00",
    "total_tax": "0.00",
    "updated_at": "2021-12-31T19:00:00-05:00",
    "billing_address": {"first_name": "Steve", "address1": "123 Shipping Street", "phone": "555-555-SHIP",
                        "city": "Shippington", "zip": "40003", "province": "Kentucky", "country": "United States",
                        "last_name": "Shipper", "address2": None, "company": "Shipping Company",
                        "latitude": None, "longitude": None, "name": "Steve Shipper", "country_code": "US",
                        "province_code": "KY"},
    "customer": {"id": 115310627314723954, "email": "john@example.com", "accepts_marketing": False,
                 "created_at": None, "updated_at": None, "first_name": "John", "last_name": "Smith",
                 "state": "disabled", "note": None, "verified_email": True, "multipass_identifier": None,
                 "tax_exempt": False, "phone": PHONE, "currency": "USD"},
    "line_items": [
        {"id": 866550311766439020, "admin_graphql_api_id": "gid://shopify/LineItem/866550311766439020",
         "fulfillable_quantity": 1, "fulfillment_service": "manual", "fulfillment_status": None,
         "gift_card": False, "grams": 567, "name": "IPod Nano - 8GB", "price": "199.00", "product_exists": True,
         "product_id": 632910392, "quantity": 1, "requires_shipping": True, "sku": "IPOD2008PINK",
         "taxable": True, "title": "IPod Nano - 8GB", "total_discount": "0.00", "variant_id": 808950810,
         "variant_title": None, "vendor": None},
        {"id": 141249953214522974, "admin_graphql_api_id": "gid://shopify/LineItem/141249953214522974",
         "fulfillable_quantity": 1, "fulfillment_service": "manual", "fulfillment_status": None,
         "gift_card": False, "grams": 567, "name": "IPod Nano - 8GB", "price": "199.00", "product_exists": True,
         "product_id": 632910392, "quantity": 1, "requires_shipping": True, "sku": "IPOD2008PINK",
         "taxable": True, "title": "IPod Nano - 8GB", "total_discount": "0.00", "variant_id": 808950810,
         "variant_title": None, "vendor": None}],
    "shipping_address": {"first_name": "Steve", "address1": "123 Shipping Street", "phone": "555-555-SHIP",
                         "city": "Shippington", "zip": "40003", "province": "Kentucky",
                         "country": "United States", "last_name": "Shipper", "address2": None,
                         "company": "Shipping Company", "latitude": None, "longitude": None,
                         "name": "Steve Shipper", "country_code": "US", "province_code": "KY"},
    "shipping_lines": [{"id": 271878346596884015, "carrier_identifier": None, "code": None,
                        "discounted_price": "10.00", "price": "10.00", "source": "shopify",
                        "title": "Generic Shipping"}],
}


def shopify_order(**changes) -> dict:
    order = copy.deepcopy(SHOPIFY_ORDER)
    order.update(changes)
    return order


SHOPIFY_FULFILLMENT = {
    "id": 123456,
    "order_id": ORDER_ID,
    "status": "pending",
    "created_at": "2021-12-31T19:00:00-05:00",
    "service": None,
    "updated_at": "2021-12-31T19:00:00-05:00",
    "tracking_company": "UPS",
    "shipment_status": None,
    "location_id": None,
    "origin_address": None,
    "email": "jon@example.com",
    "destination": {"first_name": "Steve", "address1": "123 Shipping Street", "phone": "555-555-SHIP",
                    "city": "Shippington", "zip": "40003", "province": "Kentucky", "country": "United States",
                    "last_name": "Shipper", "address2": None, "company": "Shipping Company", "latitude": None,
                    "longitude": None, "name": "Steve Shipper", "country_code": "US", "province_code": "KY"},
    "line_items": [{"id": 866550311766439020, "name": "IPod Nano - 8GB", "price": "199.00", "quantity": 1,
                    "sku": "IPOD2008PINK", "title": "IPod Nano - 8GB"}],
    "tracking_number": "1Z2345",
    "tracking_numbers": ["1Z2345"],
    "tracking_url": "https://www.ups.com/WebTracking?loc=en_US&requester=ST&trackNums=1Z2345",
    "tracking_urls": ["https://www.ups.com/WebTracking?loc=en_US&requester=ST&trackNums=1Z2345"],
    "receipt": {},
    "name": "#9999.1",
    "admin_graphql_api_id": "gid://shopify/Fulfillment/123456",
}


def shopify_fulfillment(**changes) -> dict:
    fulfillment = copy.deepcopy(SHOPIFY_FULFILLMENT)
    fulfillment.update(changes)
    return fulfillment


WOO_ORDER = {
    "id": 727,
    "parent_id": 0,
    "number": "727",
    "order_key": "wc_order_58d2d042d1d",
    "created_via": "rest-api",
    "version": "3.0.0",
    "status": "processing",
    "currency": "USD",
    "date_created": "2017-03-22T16:28:02",
    "date_created_gmt": "2017-03-22T19:28:02",
    "date_modified": "2017-03-22T16:28:08",
    "date_modified_gmt": "2017-03-22T19:28:08",
    "discount_total": "0.00",
    "discount_tax": "0.00",
    "shipping_total": "10.00",
    "shipping_tax": "0.00",
    "cart_tax": "1.35",
    "total": "29.35",
    "total_tax": "1.35",
    "prices_include_tax": False,
    "customer_id": 0,
    "customer_ip_address": "",
    "customer_user_agent": "",
    "customer_note": "",
    "billing": {"first_name": "John", "last_name": "Doe", "company": "", "address_1": "969 Market",
                "address_2": "", "city": "San Francisco", "state": "CA", "postcode": "94103", "country": "US",
                "email": "john.doe@example.com", "phone": "+1 415 555 0132"},
    "shipping": {"first_name": "John", "last_name": "Doe", "company": "", "address_1": "969 Market",
                 "address_2": "", "city": "San Francisco", "state": "CA", "postcode": "94103", "country": "US"},
    "payment_method": "bacs",
    "payment_method_title": "Direct Bank Transfer",
    "transaction_id": "",
    "date_paid": "2017-03-22T16:28:08",
    "date_paid_gmt": "2017-03-22T19:28:08",
    "date_completed": None,
    "date_completed_gmt": None,
    "cart_hash": "",
    "meta_data": [],
    "line_items": [
        {"id": 315, "name": "Woo Single #1", "product_id": 93, "variation_id": 0, "quantity": 2,
         "tax_class": "", "subtotal": "6.00", "subtotal_tax": "0.45", "total": "6.00", "total_tax": "0.45",
         "taxes": [{"id": 75, "total": "0.45", "subtotal": "0.45"}], "meta_data": [], "sku": "", "price": 3},
        {"id": 316, "name": "Ship Your Idea &ndash; Color: Black, Size: M Test", "product_id": 22,
         "variation_id": 23, "quantity": 1, "tax_class": "", "subtotal": "12.00", "subtotal_tax": "0.90",
         "total": "12.00", "total_tax": "0.90", "taxes": [{"id": 75, "total": "0.9", "subtotal": "0.9"}],
         "meta_data": [], "sku": "Bar3", "price": 12}],
    "tax_lines": [],
    "shipping_lines": [{"id": 317, "method_title": "Flat Rate", "method_id": "flat_rate", "total": "10.00",
                        "total_tax": "0.00", "taxes": []}],
    "fee_lines": [],
    "coupon_lines": [],
    "refunds": [],
}


def woo_order(**changes) -> dict:
    order = copy.deepcopy(WOO_ORDER)
    order.update(changes)
    return order


def json_of(payload: dict) -> bytes:
    """A body as the shops send it: JSON, UTF-8."""
    import json

    return json.dumps(payload).encode()
