{{ config(materialized='view') }}
-- Active golden customers with their segment and churn risk (PII stays masked upstream).
select customer_id, region, country, rfm_segment, churn_risk_band, lifetime_value_reporting
from {{ source('analytics', 'customer_360') }}
where customer_status = 'active'
