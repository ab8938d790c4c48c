{{ config(materialized='table') }}
-- Value per segment and region, with the team that owns the segment.
select c.rfm_segment, c.region, coalesce(o.owner, 'unassigned') as owner,
       count(*) as customers, cast(sum(c.lifetime_value_reporting) as decimal(18, 2)) as lifetime_value_reporting
from {{ ref('active_customers') }} c
left join {{ ref('segment_owners') }} o on o.rfm_segment = c.rfm_segment
group by c.rfm_segment, c.region, coalesce(o.owner, 'unassigned')
