{#- Arrays (DataFusion lists): array_construct(inputs, data_type) (make_array of
    the inputs; with no inputs an empty array of data_type), array_append(array,
    new_element), array_concat(array_1, array_2). -#}
{% macro array_construct(inputs=[], data_type='integer') -%}
  {{ return(adapter.dispatch('array_construct', 'dbt')(inputs, data_type)) }}
{%- endmacro %}

{% macro default__array_construct(inputs, data_type) -%}
  {%- if inputs | length > 0 -%}
    array[ {{ inputs | join(' , ') }} ]
  {%- else -%}
    cast(array[] as {{ data_type }}[])
  {%- endif -%}
{%- endmacro %}

{% macro sluice__array_construct(inputs, data_type) -%}
  {%- if inputs | length > 0 -%}
    make_array({{ inputs | join(', ') }})
  {%- else -%}
    cast(make_array() as {{ data_type }}[])
  {%- endif -%}
{%- endmacro %}

{% macro array_append(array, new_element) -%}
  {{ return(adapter.dispatch('array_append', 'dbt')(array, new_element)) }}
{%- endmacro %}

{% macro default__array_append(array, new_element) -%}
    array_append({{ array }}, {{ new_element }})
{%- endmacro %}

{% macro array_concat(array_1, array_2) -%}
  {{ return(adapter.dispatch('array_concat', 'dbt')(array_1, array_2)) }}
{%- endmacro %}

{% macro default__array_concat(array_1, array_2) -%}
    array_cat({{ array_1 }}, {{ array_2 }})
{%- endmacro %}

{% macro sluice__array_concat(array_1, array_2) -%}
    array_concat({{ array_1 }}, {{ array_2 }})
{%- endmacro %}
