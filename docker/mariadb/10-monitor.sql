-- Run by the mariadb image's entrypoint on the primary at initialisation, after it created the
-- zkpost user; binlogged, so the replica gets it too. postsvcd and writebackd read replica lag
-- (SHOW SLAVE STATUS).
GRANT REPLICATION CLIENT, SLAVE MONITOR ON *.* TO 'zkpost'@'%';
