<?php
/**
 * Router for PHP's built-in server, serving a farm by URL path: /<wiki id>/...
 *
 *   MW_CONFIG_FILE=/etc/wiki-farm/LocalSettings.php \
 *     php -S 127.0.0.1:8080 -t /usr/share/mediawiki contrib/mediawiki/router.php
 *
 * /<id>/, /<id>/index.php/<title> and /<id>/{api,load,rest}.php run MediaWiki's entry
 * points (LocalSettings.php includes FarmSettings.php, which reads the wiki's
 * <export dir>/wikis/<id>.json and answers 404/410/503 for unknown, purged and archived
 * ids); /<id>/{resources,skins,extensions}/... are its static files. For testing and
 * development: production uses a real web server with the same map.
 */

$IP = rtrim( getenv( 'MW_INSTALL_PATH' ) ?: '/usr/share/mediawiki', '/' );
$path = rawurldecode( (string)parse_url( $_SERVER['REQUEST_URI'], PHP_URL_PATH ) );

if ( !preg_match( '#^/([^/]+)(/.*)?$#', $path, $match ) ) {
	http_response_code( 404 );
	echo "Not found: URLs start with a wiki id.\n";
	return true;
}
$prefix = '/' . $match[1];
$rest = $match[2] ?? '/';

const FARM_STATIC_TYPES = [
	'css' => 'text/css', 'js' => 'application/javascript', 'json' => 'application/json',
	'png' => 'image/png', 'gif' => 'image/gif', 'jpg' => 'image/jpeg', 'svg' => 'image/svg+xml',
	'ico' => 'image/x-icon', 'woff' => 'font/woff', 'woff2' => 'font/woff2',
];

if ( preg_match( '#^/(resources|skins|extensions)/[A-Za-z0-9_.+/-]+$#', $rest )
	&& !str_contains( $rest, '..' )
) {
	$file = realpath( $IP . $rest );
	$type = FARM_STATIC_TYPES[strtolower( pathinfo( $rest, PATHINFO_EXTENSION ) )] ?? null;
	if ( $file === false || !str_starts_with( $file, realpath( $IP ) . '/' ) || $type === null ) {
		http_response_code( 404 );
		return true;
	}
	header( "Content-Type: $type" );
	readfile( $file );
	return true;
}

$entry = 'index';
$pathInfo = '';
if ( preg_match( '#^/(index|api|load|rest|opensearch_desc)\.php(/.*)?$#', $rest, $e ) ) {
	$entry = $e[1];
	$pathInfo = $e[2] ?? '';
} elseif ( $rest !== '/' ) {
	http_response_code( 404 );
	echo "Not found.\n";
	return true;
}

$_SERVER['SCRIPT_NAME'] = "$prefix/$entry.php";
$_SERVER['SCRIPT_FILENAME'] = "$IP/$entry.php";
$_SERVER['PHP_SELF'] = $_SERVER['SCRIPT_NAME'] . $pathInfo;
if ( $pathInfo !== '' ) {
	$_SERVER['PATH_INFO'] = $pathInfo;
} else {
	unset( $_SERVER['PATH_INFO'] );
}
chdir( $IP );
require "$IP/$entry.php";
return true;
