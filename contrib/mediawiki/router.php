<?php
/**
 * Router for PHP's built-in server, serving a farm by URL path: /<wiki id>/...
 *
 *   MW_CONFIG_FILE=/path/to/contrib/mediawiki/LocalSettings.php \
 *     php -S 127.0.0.1:8080 -t /usr/share/mediawiki contrib/mediawiki/router.php
 *
 * (bin/dev wikis does this.) /<id>/, /<id>/index.php/<title> and
 * /<id>/{api,load,rest}.php run MediaWiki's entry points (LocalSettings.php includes
 * FarmSettings.php, which reads the wiki's <export dir>/wikis/<id>.json and answers
 * 404/410/503 for unknown, purged and archived ids); /<id>/{resources,skins,extensions}/...
 * are its static files; /<id>/images/... are the wiki's uploads, from the folder its file
 * names (filesystem storage); / is a small index of the farm's wikis. For testing and
 * development: production uses a real web server with the same map
 * (docs/mediawiki-production.md).
 *
 * The export folder and the portal's address come from the environment, as for
 * LocalSettings.php: FARM_EXPORT_DIR (or FARM_DATA_DIR/exports), FARM_PORTAL_URL.
 */

$IP = rtrim( getenv( 'MW_INSTALL_PATH' ) ?: '/usr/share/mediawiki', '/' );
$path = rawurldecode( (string)parse_url( $_SERVER['REQUEST_URI'], PHP_URL_PATH ) );

const FARM_UPLOAD_TYPES = [
	'png' => 'image/png', 'gif' => 'image/gif', 'jpg' => 'image/jpeg', 'jpeg' => 'image/jpeg',
	'webp' => 'image/webp', 'svg' => 'image/svg+xml', 'ico' => 'image/x-icon',
	'tif' => 'image/tiff', 'tiff' => 'image/tiff', 'bmp' => 'image/bmp',
	'pdf' => 'application/pdf', 'djvu' => 'image/vnd.djvu', 'ogg' => 'application/ogg',
	'oga' => 'audio/ogg', 'ogv' => 'video/ogg', 'opus' => 'audio/opus', 'mp3' => 'audio/mpeg',
	'wav' => 'audio/wav', 'flac' => 'audio/flac', 'mp4' => 'video/mp4', 'webm' => 'video/webm',
	'mid' => 'audio/midi', 'txt' => 'text/plain; charset=utf-8',
];
// Not public: MediaWiki keeps deleted files, stashed uploads and its locks here.
// archive/ (old versions of files) is public, as in a plain MediaWiki.
const FARM_PRIVATE_UPLOAD_FOLDERS = [ 'deleted', 'temp', 'lockdir' ];

if ( $path === '/' || $path === '/index.html' ) {
	farmIndex();
	return true;
}
if ( !preg_match( '#^/([^/]+)(/.*)?$#', $path, $match ) ) {
	http_response_code( 404 );
	header( 'Content-Type: text/plain; charset=utf-8' );
	echo "Not found: URLs start with a wiki id.\n";
	return true;
}
$prefix = '/' . $match[1];
$rest = $match[2] ?? '/';

if ( str_starts_with( $rest, '/images/' ) ) {
	farmUpload( $match[1], substr( $rest, strlen( '/images/' ) ) );
	return true;
}

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

/** Load the farm's helpers without MediaWiki (only for answers that do not run it). */
function farmLoadHelpers(): void {
	require_once __DIR__ . '/FarmEnvironment.php';
	if ( !defined( 'MEDIAWIKI' ) ) {
		// FarmSettings.php is a MediaWiki settings file; here only its class is wanted.
		define( 'MEDIAWIKI', true );
	}
	if ( !defined( 'WIKI_FARM_SETTINGS_NO_SETUP' ) ) {
		define( 'WIKI_FARM_SETTINGS_NO_SETUP', true );
	}
	require_once __DIR__ . '/FarmSettings.php';
	$GLOBALS['wgFarmPortalUrl'] = WikiFarmEnvironment::get( 'FARM_PORTAL_URL',
		'http://127.0.0.1:8000/' );
}

function farmHtml( string $text ): string {
	return htmlspecialchars( $text, ENT_QUOTES, 'UTF-8' );
}

/** Ids of a dblist, one a line; [] if there is none. */
function farmDblist( string $dir, string $name ): array {
	$text = @file_get_contents( "$dir/dblists/$name.dblist" );
	if ( $text === false || $text === '' ) {
		return [];
	}
	return explode( "\n", rtrim( $text, "\n" ) );
}

/**
 * The farm's index: the served wikis (all.dblist minus archived.dblist, closed ones
 * marked), at most FARM_INDEX_LIMIT of them: at 100,000 wikis the dblists are about 1 MB,
 * read once per view of this page (a few ms), never by a wiki's own requests.
 */
function farmIndex(): void {
	farmLoadHelpers();
	$limit = 500;
	$dir = WikiFarmEnvironment::exportDir();
	$all = farmDblist( $dir, 'all' );
	$archived = array_flip( farmDblist( $dir, 'archived' ) );
	$closed = array_flip( farmDblist( $dir, 'closed' ) );
	$shown = [];
	$count = 0;
	foreach ( $all as $id ) {
		if ( $id === '' || isset( $archived[$id] ) ) {
			continue;
		}
		$count++;
		if ( count( $shown ) < $limit ) {
			$shown[] = $id;
		}
	}
	$portal = (string)$GLOBALS['wgFarmPortalUrl'];
	header( 'Content-Type: text/html; charset=utf-8' );
	header( 'Cache-Control: no-cache' );
	$items = '';
	foreach ( $shown as $id ) {
		$e = farmHtml( $id );
		$items .= '<li><a href="/' . rawurlencode( $id ) . "/\">$e</a>"
			. ( isset( $closed[$id] ) ? ' <small>(closed: read-only)</small>' : '' ) . "</li>\n";
	}
	$note = $count > count( $shown )
		? '<p>Showing the first ' . count( $shown ) . " of $count wikis, by id; the portal "
			. "lists and searches them all.</p>\n"
		: '';
	$portalLink = preg_match( '#^https?://#', $portal )
		? '<p><a href="' . farmHtml( $portal ) . '">The wiki farm portal</a>: '
			. "create a wiki, manage yours.</p>\n"
		: '';
	if ( !is_dir( "$dir/dblists" ) ) {
		$note .= '<p>The farm\'s export (' . farmHtml( $dir ) . ') has no dblists yet.</p>' . "\n";
	}
	echo "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
		. "<title>Wiki farm</title></head><body>\n<h1>Wiki farm</h1>\n"
		. "<p>$count " . ( $count === 1 ? 'wiki' : 'wikis' ) . " served here.</p>\n"
		. $portalLink . $note . ( $items !== '' ? "<ul>\n$items</ul>\n" : '' )
		. "</body></html>\n";
}

/** /<id>/images/<path>: a file of the wiki's storage folder (filesystem storage only). */
function farmUpload( string $id, string $relative ): void {
	farmLoadHelpers();
	$dir = WikiFarmEnvironment::exportDir();
	// 404/410/503 as for the wiki itself (archived wikis' files are not served either).
	$wiki = WikiFarmSettings::select( $id, WikiFarmSettings::loadWiki( $dir, $id ), false );
	$storage = $wiki['storage'] ?? null;
	$root = ( is_array( $storage ) && ( $storage['type'] ?? null ) === 'filesystem' )
		? realpath( (string)( $storage['path'] ?? '' ) ) : false;
	$segments = explode( '/', $relative );
	$valid = $root !== false && $relative !== ''
		&& !in_array( $segments[0], FARM_PRIVATE_UPLOAD_FOLDERS, true );
	foreach ( $segments as $segment ) {
		// No empty segment, no ., .., dotfile (the portal's .wiki-farm.json marker), no NUL.
		if ( $segment === '' || $segment[0] === '.' || str_contains( $segment, "\0" )
			|| str_contains( $segment, '\\' )
		) {
			$valid = false;
		}
	}
	$file = $valid ? realpath( "$root/$relative" ) : false;
	if ( $file === false || !str_starts_with( $file, "$root/" ) || !is_file( $file ) ) {
		http_response_code( 404 );
		header( 'Content-Type: text/plain; charset=utf-8' );
		echo "No such file.\n";
		return;
	}
	$extension = strtolower( pathinfo( $file, PATHINFO_EXTENSION ) );
	$type = FARM_UPLOAD_TYPES[$extension] ?? 'application/octet-stream';
	header( "Content-Type: $type" );
	header( 'X-Content-Type-Options: nosniff' );
	// Uploaded SVGs (and anything else) must not run scripts on the wiki's origin.
	header( "Content-Security-Policy: default-src 'none'; style-src 'unsafe-inline'; "
		. "img-src data:; sandbox" );
	if ( $type === 'application/octet-stream' ) {
		header( 'Content-Disposition: attachment' );
	}
	header( 'Content-Length: ' . filesize( $file ) );
	header( 'Last-Modified: ' . gmdate( 'D, d M Y H:i:s', filemtime( $file ) ) . ' GMT' );
	header( 'Cache-Control: public, max-age=3600' );
	if ( ( $_SERVER['REQUEST_METHOD'] ?? 'GET' ) !== 'HEAD' ) {
		readfile( $file );
	}
}
