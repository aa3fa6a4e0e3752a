CREATE TABLE l (k INT, ts BIGINT, tag VARCHAR) AS VALUES
  (1, 10, 'a'), (1, 20, 'b'), (1, 30, 'c'), (2, 5, 'd'), (3, 7, 'e'), (NULL, 9, 'f'), (1, NULL, 'g')