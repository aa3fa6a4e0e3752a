{#- except() and intersect(): the set operators' keywords (distinct rows, as
    in dbt: `except` is EXCEPT DISTINCT). -#}
{% macro except() %}
  {{ return(adapter.dispatch('except', 'dbt')()) }}
{% endmacro %}

{% macro default__except() -%}
    except
{%- endmacro %}

{% macro intersect() %}
  {{ return(adapter.dispatch('intersect', 'dbt')()) }}
{% endmacro %}

{% macro default__intersect() -%}
    intersect
{%- endmacro %}
